"""Replaces one "## " section of a markdown report (docs/benchmarks.md), used by the benchmark
scripts so that each rewrites only its own section."""
import os


def replace_section(path, section):
    """Puts `section`, whose first line is its "## " heading, in place of the section of the file
    at `path` under the same heading (up to the next "## " heading), or at its end."""
    new = section.rstrip("\n").split("\n")
    heading = new[0]
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + new + [""] + lines[end:]
    else:
        lines = lines + [""] + new
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")
