"""Test helpers shared across test modules (tiny real models, fixtures)."""
