"""What turns runs into pictures and tables: figures, Markdown, published references, and
model inspection (params, MACs, receptive field)."""
