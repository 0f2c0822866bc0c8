"""Recipes: published training recipes reproduced inside the suite, each in its own folder."""
