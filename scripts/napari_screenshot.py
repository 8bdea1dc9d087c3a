"""Screenshot of napari with the cellsynth Synthesize widget and a synthesized sample (docs/).

Run on a display, or headless under Xvfb (Qt draws its OpenGL canvas there only on the xcb platform):

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/napari_screenshot.py docs/napari_synthesize.png
"""

import argparse
import time

import napari
from qtpy.QtWidgets import QApplication

from cellsynth.napari.synthesize_widget import SynthesizeWidget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--preset", default="arabidopsis_ovule_nuclei", help="preset to synthesize")
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 160, 160), metavar=("Z", "Y", "X"))
    args = parser.parse_args()

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 860)
    widget = SynthesizeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Synthesize (cellsynth)", area="right")
    widget.preset.value = args.preset
    widget.shape.value = tuple(args.shape)
    widget.run()
    while not widget.status.value.startswith(("done", "failed")):
        QApplication.processEvents()
        time.sleep(0.05)
    if widget.status.value == "failed":
        raise SystemExit("the synthesis failed (see the notification above)")
    viewer.layers["synthesized labels"].opacity = 0.35
    viewer.dims.set_point(0, viewer.dims.range[0].stop / 2)
    viewer.scale_bar.visible = True
    viewer.reset_view()
    viewer.screenshot(args.out, canvas_only=False, flash=False)
    viewer.close()


if __name__ == "__main__":
    main()
