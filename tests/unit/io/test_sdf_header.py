"""The SDF header parser (io/sdf_header.py): the grammar of the real ALS headers, and clear
errors for text that is not in it."""

import pytest

from xanes_stream.errors import StackFileError
from xanes_stream.io.sdf_header import parse_sdf_header, read_sdf_header

TEXT = """ScanDefinition = { Label = "a.hdr"; Dwell = 0.444;
\tRegions = (1,
{
\t\t\tPAxis = { Name = "Sample X"; Unit = "um"; Points = (3, -1.5, -1.42, 2e-1);
};
});
\tChannels = (1,
{ Name = "counter1"; Unit = "counts";});
};
 Time = "2007 December 14 21:40:13"; BeamFeedback = true; ShutterAutomatic = false;
Empty = (0);
"""


def test_nested_groups_lists_strings_numbers_and_booleans():
    header = parse_sdf_header(TEXT)
    scan = header["ScanDefinition"]
    assert scan["Label"] == "a.hdr" and scan["Dwell"] == 0.444
    assert scan["Regions"][0]["PAxis"]["Points"] == [-1.5, -1.42, 0.2]
    assert scan["Channels"] == [{"Name": "counter1", "Unit": "counts"}]
    assert header["BeamFeedback"] is True and header["ShutterAutomatic"] is False
    assert header["Time"] == "2007 December 14 21:40:13" and header["Empty"] == []


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("A = (3, 1, 2);", "says 3 items but has 2"),
        ("A = { B = 1;", "ends inside a group"),
        ("A = 1 B = 2;", "no ';'"),
        ("A = __import__('os');", "unexpected text"),
        ('A = ("x", 1);', "does not start with its count"),
        ("= 1;", "where name was expected"),
    ],
)
def test_text_outside_the_grammar_is_a_clear_error(tmp_path, text, what):
    path = tmp_path / "bad.hdr"
    path.write_text(text)
    with pytest.raises(StackFileError, match="bad.hdr: not an SDF header") as err:
        read_sdf_header(path)
    assert what in str(err.value)
