# Prepare rules of the translation family (Multi30k, WMT16).
