"""The gallery: lists, people, templates and rejections; the search index; the open-set decision."""
