"""Teacher pretraining: rectified-flow training of the embedded model on a world's captioned images."""
