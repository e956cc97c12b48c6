"""The networks labkit ships: 1D MLPs (lab 1), DCGAN-style conv blocks (image labs), the metric classifiers."""
