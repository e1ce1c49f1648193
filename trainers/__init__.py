"""Reference trainers: one folder per model family. Trainers import ``geneval``; never the other way round."""
