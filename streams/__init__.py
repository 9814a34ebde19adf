"""The Faust application of lunch-streams and its wiring."""
