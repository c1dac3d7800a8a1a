"""GenEval conventions: the image-folder layout, prompt files and the placement / count / colour rules."""
