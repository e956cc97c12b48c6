"""labkit: the support package behind the GAN course notebooks."""
__version__ = "0.1.0"

from . import distributions  # noqa: E402,F401  (light: numpy + scipy only)
