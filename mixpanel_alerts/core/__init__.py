"""The bottom layer: configuration (settings and the events configuration, one model each),
Mixpanel credentials and secrets, and warehouse access (the dlt destination, the single-writer turn,
scratch folders). Everything above imports from here; this imports nothing above it."""
