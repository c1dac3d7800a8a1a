"""Training loops (pretrain, distill, rl): they wire the parts together; the maths lives elsewhere."""
