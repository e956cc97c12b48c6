"""What students look at: histograms and curves (plotting), GIFs of training (animation), the live view (live)."""
