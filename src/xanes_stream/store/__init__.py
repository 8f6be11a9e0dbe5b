"""Results and reference spectra in Tiled."""
