"""Synthesis models: what turns a patch of mask and positional map into a microscope image.

- :mod:`~cellsynth.render.model`: the interface every model follows (:class:`SynthesisModel`);
- :mod:`~cellsynth.render.physics`: the optical forward model (:class:`PhysicsRenderer`);
- :mod:`~cellsynth.render.gan`: a trained generator as a model (:func:`load_generator`);
- :mod:`~cellsynth.render.randomness`: counter-based random fields, the same in any tiling;
- :mod:`~cellsynth.render.registry`: ``--model`` names (``default``, ``physics``, shipped
  generators, files) to models (:func:`load_model`).

Rendering reads generator files through :mod:`cellsynth.gan.checkpoints`, never through the
training loop.
"""

from cellsynth._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    ".model": ["SynthesisModel"],
    ".physics": ["PhysicsParameters", "PhysicsRenderer"],
    ".gan": ["GeneratorModel", "load_generator"],
    ".registry": ["default_model_name", "describe_model", "load_model"],
})
