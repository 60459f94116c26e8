"""Loading documents: the parse-once layer (DXF, DWG, STEP), file kinds, names and errors."""
