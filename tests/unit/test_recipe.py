"""Recipe files: the documented example loads, every field is validated, and errors name the
file, the line and the field."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from editors.recipe import (
    ConvertVersion,
    Purge,
    RecipeError,
    RedefineBlock,
    RenameLayer,
    ReplaceText,
    SetAttributes,
    SetLayer,
    VersionTest,
    load_recipe,
)
from tests.conftest import REPO
from tests.edit_drawings import make_library_block

EXAMPLE = REPO / "editors" / "recipe-example.yaml"


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, text))
    return str(caught.value)


def test_the_documented_example_loads_with_every_operation(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "example.yaml")
    make_library_block(tmp_path / "library" / "TB-A3.dxf")
    recipe = load_recipe(tmp_path / "example.yaml")
    assert recipe.name == "project-x-rev-b"
    assert [op.op for op in recipe.operations] == [
        "set_attributes",
        "replace_text",
        "rename_layer",
        "set_layer",
        "redefine_block",
        "purge",
        "convert_version",
    ]
    attributes, replace, rename, layer, redefine, purge, convert = recipe.operations
    assert attributes == SetAttributes(tags=(("DATE", "2024-06-01"),), fields=(("revision", "B"),), blocks=None)
    assert replace == ReplaceText(r"\bPhase\s+(\d+)", r"Stage \1", False, ("TEXT", "MTEXT", "ATTRIB"))
    assert rename == RenameLayer("DIM", "DIMENSIONS")
    assert layer == SetLayer(("DIMENSIONS",), 3, "DASHED")
    assert isinstance(redefine, RedefineBlock) and redefine.source == tmp_path / "library" / "TB-A3.dxf"
    assert purge == Purge(True, True) and convert == ConvertVersion("AC1032")
    select = recipe.select
    assert select.paths == ("project-x/*",) and select.exclude == ("*/superseded/*", "*-old.dxf")
    assert select.dxf_version == VersionTest(">=", ("AC1009",))
    assert select.title_block == (("drawing_number", ("PX-*",)), ("revision", ("A", "A.*")))
    assert select.needs_facts and len(recipe.hash) == 64


def test_minimal_recipe_defaults(tmp_path):
    recipe = load_recipe(
        write(
            tmp_path,
            """
        operations:
          - purge:
          - set_attributes: {tags: {REV: 02}, blocks: [TB-*, FRAME]}
    """,
            name="My Recipe!.yaml",
        )
    )
    assert recipe.name == "My-Recipe"  # from the file name, made fit for a folder name
    assert recipe.select.formats == ("dxf", "dxf-binary") and not recipe.select.needs_facts
    assert recipe.operations[0] == Purge(True, True)
    # values stay text as written: 02 is not the number 2
    assert recipe.operations[1] == SetAttributes(tags=(("REV", "02"),), blocks=("TB-*", "FRAME"))


def test_hash_follows_what_the_recipe_does_not_how_it_is_written(tmp_path):
    one = load_recipe(
        write(
            tmp_path,
            """
        name: r
        operations:
          - rename_layer: {from: DIM, to: DIMENSIONS}
    """,
            "a.yaml",
        )
    )
    same = load_recipe(
        write(
            tmp_path,
            """
        # a comment, another layout
        name: r
        operations:
          - rename_layer:
              to: DIMENSIONS
              from: DIM
    """,
            "b.yaml",
        )
    )
    other = load_recipe(
        write(
            tmp_path,
            """
        name: r
        operations:
          - rename_layer: {from: DIM, to: DIMS}
    """,
            "c.yaml",
        )
    )
    assert one.hash == same.hash != other.hash
    assert one.short_hash == one.hash[:8]


def test_hash_includes_the_library_block_content(tmp_path):
    library = make_library_block(tmp_path / "lib.dxf", width=200)
    path = write(
        tmp_path,
        """
        operations:
          - redefine_block: {block: TB-A3, source: lib.dxf}
    """,
    )
    before = load_recipe(path).hash
    make_library_block(library, width=210)
    assert load_recipe(path).hash != before


def test_version_conditions(tmp_path):
    def test(value: str) -> VersionTest:
        recipe = load_recipe(write(tmp_path, f"select: {{dxf_version: {value}}}\noperations: [purge: ]\n"))
        return recipe.select.dxf_version

    older = test('"< R2000"')
    assert older == VersionTest("<", ("AC1015",))
    assert older.matches("AC1009") and older.matches("AC1014") and not older.matches("AC1015")
    assert not older.matches(None)
    assert test("R12") == VersionTest("in", ("AC1009",)) == test("r11") == test('"= AC1009"')
    listed = test("[R12, AC1032]")
    assert listed.matches("ac1032") and listed.matches("AC1009") and not listed.matches("AC1015")
    assert test('">=R2013"').matches("AC1032")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "operation: []\n",
            "recipe.yaml:1: recipe: unknown field 'operation' (known: operations, name, description, select)",
        ),
        ("name: x\n", "recipe.yaml:1: recipe: missing field 'operations'"),
        ("operations: []\n", "recipe.yaml:1: operations: must not be empty"),
        ("name: a/b\noperations: [purge: ]\n", "recipe.yaml:1: name: letters, digits"),
        (
            "operations:\n  - purge:\n  - rename_layers: {from: A, to: B}\n",
            "recipe.yaml:3: operations[1]: unknown operation 'rename_layers' (known: set_attributes, replace_text,",
        ),
        (
            "operations:\n  - purge: {}\n    rename_layer: {from: A, to: B}\n",
            "recipe.yaml:2: operations[0]: must name exactly one operation",
        ),
        (
            "operations:\n  - rename_layer:\n      from: DIM\n",
            "recipe.yaml:3: operations[0].rename_layer: missing field 'to'",
        ),
        (
            "operations:\n  - rename_layer: {from: '0', to: B}\n",
            "recipe.yaml:2: operations[0].rename_layer.from: layer '0' cannot be renamed",
        ),
        (
            "operations:\n  - rename_layer: {from: A, to: 'B*'}\n",
            "recipe.yaml:2: operations[0].rename_layer.to: 'B*' is not a valid layer name",
        ),
        (
            "operations:\n  - set_layer:\n      layer: DIM\n      color: 300\n",
            "recipe.yaml:4: operations[0].set_layer.color: must be from 1 to 255, not 300",
        ),
        (
            "operations:\n  - set_layer:\n      layer: DIM\n      color: red\n",
            "recipe.yaml:4: operations[0].set_layer.color: must be a whole number from 1 to 255, not 'red'",
        ),
        (
            "operations:\n  - set_layer: {layer: DIM}\n",
            "recipe.yaml:2: operations[0].set_layer: give 'color' and/or 'linetype'",
        ),
        (
            "operations:\n  - replace_text:\n      pattern: 'A(B'\n      replacement: C\n",
            "recipe.yaml:3: operations[0].replace_text.pattern: invalid regular expression: missing ), unterminated subpattern",
        ),
        (
            "operations:\n  - replace_text:\n      pattern: 'A(B)'\n      replacement: '\\2'\n",
            "recipe.yaml:4: operations[0].replace_text.replacement: invalid replacement: invalid group reference 2",
        ),
        (
            "operations:\n  - replace_text: {pattern: 'x*', replacement: y}\n",
            "recipe.yaml:2: operations[0].replace_text.pattern: matches empty text",
        ),
        (
            "operations:\n  - replace_text: {pattern: x, replacement: y, entities: [TEXT, LINE]}\n",
            "recipe.yaml:2: operations[0].replace_text.entities: 'LINE' is not one of TEXT, MTEXT, ATTRIB",
        ),
        (
            "operations:\n  - replace_text: {pattern: x, replacement: y, ignore_case: maybe}\n",
            "recipe.yaml:2: operations[0].replace_text.ignore_case: must be true or false, not 'maybe'",
        ),
        (
            "operations:\n  - set_attributes: {blocks: title_block}\n",
            "recipe.yaml:2: operations[0].set_attributes: give 'tags' (attribute tag: value) or 'fields'",
        ),
        (
            "operations:\n  - set_attributes:\n      fields: {revison: B}\n",
            "recipe.yaml:3: operations[0].set_attributes.fields: unknown title field 'revison' (known: title, drawing_number, revision,",
        ),
        (
            "operations:\n  - set_attributes:\n      tags: {REV: ~}\n",
            "recipe.yaml:3: operations[0].set_attributes.tags.REV: must be a text value",
        ),
        (
            "operations:\n  - purge: {layers: false, blocks: false}\n",
            "recipe.yaml:2: operations[0].purge: nothing to purge",
        ),
        (
            "operations:\n  - convert_version: {to: R12}\n",
            "recipe.yaml:2: operations[0].convert_version.to: cannot write AC1009 (R12) (allowed: R2000, R2004,",
        ),
        (
            "operations:\n  - convert_version: {to: R2019}\n",
            "recipe.yaml:2: operations[0].convert_version.to: unknown DXF version 'R2019'",
        ),
        (
            "operations:\n  - redefine_block: {block: TB, source: missing.dxf}\n",
            "recipe.yaml:2: operations[0].redefine_block.source: library drawing not found:",
        ),
        (
            "select:\n  formats: [dxf, step]\noperations: [purge: ]\n",
            "recipe.yaml:2: select.formats: 'step' cannot be edited (allowed: dxf, dxf-binary)",
        ),
        (
            "select:\n  title_block:\n    number: PX-*\noperations: [purge: ]\n",
            "recipe.yaml:3: select.title_block: unknown title field 'number'",
        ),
        (
            "select:\n  dxf_version: '< R13.5'\noperations: [purge: ]\n",
            "recipe.yaml:2: select.dxf_version: unknown DXF version 'R13.5'",
        ),
        (
            "select:\n  paths: []\noperations: [purge: ]\n",
            "recipe.yaml:2: select.paths: must not be empty",
        ),
        (
            "select:\n  paths: [a]\n  paths: [b]\noperations: [purge: ]\n",
            "recipe.yaml:3: select.paths: given twice",
        ),
        (
            "operations:\n  - purge: {layers: true\n",
            "recipe.yaml:3: invalid YAML: expected ',' or '}', but got '<stream end>'",
        ),
        ("# only a comment\n", "recipe.yaml: the recipe is empty"),
        ("- purge\n", "recipe.yaml:1: recipe: must be a mapping"),
    ],
)
def test_bad_recipes_name_line_and_field(tmp_path, text, expected):
    assert error_of(tmp_path, text).startswith(expected)


def test_redefine_block_source_without_that_block(tmp_path):
    make_library_block(tmp_path / "lib.dxf")
    message = error_of(
        tmp_path,
        """
        operations:
          - redefine_block:
              block: TB-A3
              source: lib.dxf
              source_block: FRAME
    """,
    )
    assert (
        message
        == "recipe.yaml:5: operations[0].redefine_block.source_block: lib.dxf has no block 'FRAME' (blocks: TB-A3)"
    )


def test_redefine_block_source_that_is_not_a_drawing(tmp_path):
    (tmp_path / "lib.dxf").write_text("not a drawing\n")
    message = error_of(tmp_path, "operations:\n  - redefine_block: {block: TB, source: lib.dxf}\n")
    assert message.startswith(
        "recipe.yaml:2: operations[0].redefine_block.source: library drawing lib.dxf cannot be used:"
    )
    assert "not a DXF file" in message


def test_extra_title_fields_from_the_config_are_accepted(tmp_path):
    path = write(
        tmp_path, "select:\n  title_block: {contract: X-*}\noperations:\n  - set_attributes: {fields: {contract: Y}}\n"
    )  # `contract` is no default title field (`project` became one with the PDF sets' grouping)
    with pytest.raises(RecipeError, match="unknown title field 'contract'"):
        load_recipe(path)
    recipe = load_recipe(path, title_fields=["title", "revision", "contract"])
    assert recipe.select.title_block == (("contract", ("X-*",)),)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
