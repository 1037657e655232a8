"""Build hook: compile the hash chain's fast path (`registry/eventlog/_fastchain.c`) into the package.

The C file needs only the Python headers and a C compiler (SHA-256 comes at run time from the
libcrypto that Python's hashlib already uses). Without a compiler the package still installs and
works: verification then runs the Python verifier only, more slowly; the build says so.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("registry/eventlog/_fastchain.c")


class NativeBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        source = root / SOURCE
        target = source.with_name("_fastchain" + sysconfig.get_config_var("EXT_SUFFIX"))
        compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
        command = [*compiler, "-O3", "-shared", "-fPIC", "-std=c11", f"-I{sysconfig.get_paths()['include']}",
                   str(source), "-o", str(target), "-ldl"]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            print(f"registry: the compiled verifier was not built ({detail.strip()}); "
                  "log verification will use the Python verifier only", file=sys.stderr)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from the source tree
            build_data["force_include"][str(target)] = str(target.relative_to(root))
