"""Declarative edits of DXF drawings: recipes (what the end result should be), selection of the
drawings they apply to, and the operations, as plain functions over ezdxf documents.

:mod:`editors.recipe` documents the recipe file; :mod:`editors.edit_file` edits one drawing.
"""
