import pytest
from rlvr.rewards.extract import extract_code, find_blocks


@pytest.mark.parametrize(
    "text, language, expected",
    [
        ("```python\nx = 1\n```", "python", "x = 1\n"),
        ("```py\nx = 1\n```", "python", "x = 1\n"),
        ("```\nx = 1\n```", "python", "x = 1\n"),  # untagged block counts
        # the last block wins
        ("```python\nx = 1\n```\nbetter:\n```python\nx = 2\n```", "python", "x = 2\n"),
        # a tagged block beats a later untagged one
        ("```python\nx = 1\n```\n```\nsome output\n```", "python", "x = 1\n"),
        # another language's block is never taken
        ("```cpp\nint main(){}\n```", "python", None),
        ("```bash\npip install x\n```\n```python\ny = 3\n```", "python", "y = 3\n"),
        ("```c++\nint main(){}\n```", "cpp", "int main(){}\n"),
        # info string with extras, CRLF line ends, indented fence
        ("```python title=sol.py\r\nz = 0\r\n```\r\n", "python", "z = 0\n"),
        ("   ```python\nq = 1\n   ```", "python", "q = 1\n"),
        # longer fences may contain shorter ones
        ("````python\ns = '''\n```\n'''\n````", "python", "s = '''\n```\n'''\n"),
        # no fence at all, unclosed block, empty block
        ("def f():\n    return 1\n", "python", None),
        ("```python\ndef f():\n    return 1\n", "python", None),
        ("```python\n\n```", "python", None),
        ("", "python", None),
    ],
)
def test_extract_cases(text, language, expected):
    assert extract_code(text, language) == expected


def test_unclosed_and_unfenced_options():
    assert extract_code("```python\nx = 1", "python", allow_unclosed=True) == "x = 1\n"
    assert extract_code("def f():\n    return 1", "python", allow_unfenced=True) == "def f():\n    return 1\n"
    # a fenced block still wins over taking the whole text
    assert extract_code("text\n```python\nx = 1\n```", "python", allow_unfenced=True) == "x = 1\n"


def test_find_blocks_reports_tags_and_closure():
    blocks = find_blocks("```Python\na\n```\n```\nb")
    assert [(b.tag, b.code, b.closed) for b in blocks] == [("python", "a", True), ("", "b", False)]


@pytest.mark.timeout(30)  # quadratic backtracking would take hours: the timeout turns that into a failure
def test_one_megabyte_completion_is_linear():
    # pathological for naive regexes: a huge line of spaces after a fence, then 1 MB of prose
    text = "```" + " " * 300_000 + "`\n" + ("word " * 140_000)
    assert len(text) > 1_000_000
    assert extract_code(text, "python") is None
    big = "```python\n" + "# pad\n" * 180_000 + "x = 1\n```"
    assert extract_code(big, "python").endswith("x = 1\n")
