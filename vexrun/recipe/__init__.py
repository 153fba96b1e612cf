"""Recipes: YAML loading with positions, interpolation, the pydantic model tree."""
