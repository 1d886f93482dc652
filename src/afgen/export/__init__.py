"""Exporters: a store, the seed's frames or a trained model in a layout for other tools."""
