"""The digital twin of the optics, the front-end sample model, and the Verilator model loader."""
