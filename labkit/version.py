"""The course kit's version, in one place: labkit's ``__version__``, the setup line of every notebook, pip."""
__version__ = "0.2.0"
