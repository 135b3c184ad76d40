#!/usr/bin/env python3
"""Holds the docs to the repository: docs_tests.sh runs each subcommand and reads its verdict.

  docs_check.py links ROOT              every relative link and #anchor of the READMEs resolves
  docs_check.py first-block ROOT        README.md's first fenced block: each command exists, is executable, parses (bash -n)
  docs_check.py runnable ROOT           prints the fenced blocks marked ```sh runnable, NUL-separated, as FILE:LINE\\tTEXT
  docs_check.py keys ROOT HELP_FILE     the key table of cni-conf/README.md = the parser's key lists = `randsnat --help`'s keys
  docs_check.py bad-values ROOT         prints the table's bad values as KEY\\tJSON\\tCODE\\tMESSAGE lines
  docs_check.py json ROOT               every ```json block parses; prints randsnat's entries (as 1.1.0 configs), NUL-separated

Each check prints "ok: ..." or "FAIL: ..." lines; the exit status is 1 when any line failed.
"""
import os
import re
import subprocess
import sys

DOCS = ["README.md", "cni-conf/README.md", "install/README.md", "Tests/README.md", "Sources/README.md"]
failures = 0


def ok(text):
    print("ok: " + text)


def fail(text):
    global failures
    failures += 1
    print("FAIL: " + text)


def read(root, path):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return f.read()


def outside_fences(text):
    """The lines of a Markdown text that are not inside fenced code blocks, with their numbers."""
    inside = False
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            yield number, line


def fenced_blocks(text):
    """(info string, first line number, body) of each fenced block."""
    blocks, info, start, body = [], None, 0, []
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            if info is None:
                info, start, body = line[3:].strip(), number + 1, []
            else:
                blocks.append((info, start, "\n".join(body)))
                info = None
        elif info is not None:
            body.append(line)
    return blocks


def anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces as -."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text):
    seen, result = {}, set()
    for _, line in outside_fences(text):
        m = re.match(r"^(#{1,6}) (.*)$", line)
        if not m:
            continue
        base = anchor(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def check_links(root):
    checked = 0
    for doc in DOCS:
        text = read(root, doc)
        for number, line in outside_fences(text):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target):
                    continue  # an absolute URL: not checked offline
                checked += 1
                path, _, frag = target.partition("#")
                file = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
                if not os.path.exists(os.path.join(root, file)):
                    fail(f"{doc}:{number}: link to {target}: {file} does not exist")
                    continue
                if frag:
                    if not file.endswith(".md"):
                        fail(f"{doc}:{number}: link to {target}: an anchor into a file that is not Markdown")
                    elif frag not in anchors_of(read(root, file)):
                        fail(f"{doc}:{number}: link to {target}: {file} has no heading with anchor #{frag}")
    if checked == 0:
        fail("no links found in the docs")
    else:
        ok(f"{checked} relative links and anchors in {len(DOCS)} READMEs resolve")


def check_first_block(root):
    blocks = fenced_blocks(read(root, "README.md"))
    if not blocks:
        fail("README.md has no fenced block")
        return
    info, start, body = blocks[0]
    commands = [line.split("#", 1)[0].strip() for line in body.split("\n")]
    commands = [c for c in commands if c]
    if not commands:
        fail("README.md's first block holds no command")
    for command in commands:
        program = command.split()[0]
        path = os.path.join(root, program)
        if not os.path.isfile(path):
            fail(f"README.md's first block: {program} does not exist")
        elif not os.access(path, os.X_OK):
            fail(f"README.md's first block: {program} is not executable")
        else:
            parsed = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
            if parsed.returncode != 0:
                fail(f"README.md's first block: bash -n {program}: {parsed.stderr.strip()}")
            else:
                ok(f"README.md's first block: {program} exists, is executable and parses (bash -n)")


def print_runnable(root):
    for doc in DOCS:
        for info, start, body in fenced_blocks(read(root, doc)):
            if info.split() == ["sh", "runnable"]:
                sys.stdout.write(f"{doc}:{start}\t{body}\0")


def key_table(root):
    """The first column's keys of cni-conf/README.md's tables, per table heading."""
    text = read(root, "cni-conf/README.md")
    tables, section = {}, None
    for _, line in outside_fences(text):
        m = re.match(r"^## (.*)$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\| `([A-Za-z][A-Za-z0-9]*)` \|", line)
        if m:
            tables.setdefault(section, []).append((m.group(1), line))
    return tables


def parser_keys(root, path):
    source = read(root, path)
    m = re.search(r"public static let keys: \[String\] = \[(.*?)\]", source, re.S)
    if not m:
        fail(f"{path} has no `public static let keys: [String] = [...]`")
        return []
    return re.findall(r'"([^"]+)"', m.group(1))


def check_keys(root, help_file):
    tables = key_table(root)
    plugin = parser_keys(root, "Sources/RandSNATCore/Config/PluginConfig.swift")
    bridge = parser_keys(root, "Sources/RandSNATCore/Standalone/BridgeConfig.swift")
    documented = [k for k, _ in tables.get("randsnat's keys", [])]
    documented_bridge = [k for k, _ in tables.get("Standalone mode: the reference bridge's keys", [])]
    with open(help_file, encoding="utf-8") as f:
        help_text = f.read()
    m = re.search(r"^network config keys[^\n]*:\n((?:  .*\n?)+)", help_text, re.M)
    helped = re.findall(r"[A-Za-z][A-Za-z0-9]*", m.group(1)) if m else []
    if not m:
        fail("`randsnat --help` has no 'network config keys' section")
    for name, have, want in [("cni-conf/README.md's table of randsnat's keys", documented, plugin),
                             ("`randsnat --help`'s network config keys", helped, plugin)]:
        missing = [k for k in want if k not in have]
        extra = [k for k in have if k not in want]
        if missing:
            fail(f"{name} lacks {missing} (PluginConfig.keys has them)")
        if extra:
            fail(f"{name} has {extra}, which PluginConfig.keys does not")
        if not missing and not extra:
            ok(f"{name} = PluginConfig.keys ({len(want)} keys)")
    # The bridge keys: every one is in the standalone table, or in its list of refused keys.
    section = re.search(r"## Standalone mode: the reference bridge's keys\n(.*?)\n## ", read(root, "cni-conf/README.md"), re.S)
    section_text = section.group(1) if section else ""
    missing = [k for k in bridge if k not in documented_bridge and f"`{k}`" not in section_text]
    spec = set(re.findall(r'"([^"]+)"', re.search(r"specKeys: Set<JSONKey> = \[(.*?)\]", read(root, "Sources/CNI/NetworkConfig.swift"), re.S).group(1)))
    extra = [k for k in documented_bridge if k not in bridge and k not in plugin and k not in spec]
    if missing:
        fail(f"cni-conf/README.md's standalone section does not name {missing} (BridgeConfig.keys has them)")
    if extra:
        fail(f"cni-conf/README.md's standalone table has {extra}, which BridgeConfig.keys does not")
    if not missing and not extra:
        ok(f"cni-conf/README.md's standalone section names every key of BridgeConfig.keys ({len(bridge)} keys)")
    # Each row of randsnat's keys has five cells, the last one a bad value with its code and message.
    for key, line in tables.get("randsnat's keys", []):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.match(r"^`.+`: code \d+, `.+`$", cells[4]):
            fail(f"cni-conf/README.md: the row of {key} is not `key | type | default | example | `BAD`: code N, `MESSAGE``")
    if documented and helped:
        ok("every row of randsnat's keys has a type, a default, an example and a bad value with its error")


def print_bad_values(root):
    for key, line in key_table(root).get("randsnat's keys", []):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.match(r"^`(.+?)`(?: \(as (.+?)\))?: code (\d+), `(.+)`$", cells[4]) if len(cells) == 5 else None
        if m:
            print(f"{key}\t{m.group(1)}\t{m.group(3)}\t{m.group(4)}")


def print_json_entries(root):
    """Every ```json block must parse; randsnat's entries of them come out as 1.1.0 configs for STATUS."""
    import json
    checked = 0
    for doc in DOCS:
        for info, start, body in fenced_blocks(read(root, doc)):
            if info != "json":
                continue
            checked += 1
            try:
                value = json.loads(body)
            except ValueError as error:
                fail(f"{doc}:{start}: the json block does not parse: {error}")
                continue
            entries = value.get("plugins", [value]) if isinstance(value, dict) else []
            for entry in entries:
                if isinstance(entry, dict) and entry.get("type") == "randsnat":
                    config = dict(entry, cniVersion="1.1.0", name=value.get("name", "docs"))
                    sys.stdout.write(f"{doc}:{start}\t{json.dumps(config)}\0")
    if checked == 0:
        fail("no json blocks found in the docs")
    else:
        sys.stderr.write(f"ok: {checked} json blocks parse\n")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    command, root = sys.argv[1], sys.argv[2]
    if command == "links":
        check_links(root)
    elif command == "first-block":
        check_first_block(root)
    elif command == "runnable":
        print_runnable(root)
    elif command == "keys":
        check_keys(root, sys.argv[3])
    elif command == "bad-values":
        print_bad_values(root)
    elif command == "json":
        print_json_entries(root)
    else:
        print(__doc__)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
