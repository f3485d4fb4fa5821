"""State shared by every process and instance of one deployment (DESIGN §8): Redis."""
