"""Images to faces: model packs, detection, quality, alignment and embedding."""
