"""The challenges' metrics and the report that carries them."""
