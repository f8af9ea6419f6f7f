"""Exporters from a trained texgen model to formats that paint without PyTorch."""
