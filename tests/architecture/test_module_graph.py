# SPDX-License-Identifier: GPL-3.0-or-later
"""The module graph holds on src/, and the checker catches each kind of leak."""
import os
import tempfile
import unittest

import module_graph

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")


def tree(files):
    """A throw-away src/ holding `files` ({relative path: text})."""
    d = tempfile.TemporaryDirectory()
    for rel, text in files.items():
        path = os.path.join(d.name, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return d


class ModuleGraphTest(unittest.TestCase):
    def test_src_follows_the_graph(self):
        self.assertEqual(module_graph.check(SRC), [])

    def test_every_module_folder_is_in_the_graph(self):
        folders = {module_graph.module_of(rel) for rel, _ in module_graph.sources(SRC)}
        self.assertEqual(folders - set(module_graph.ALLOWED), set())

    def test_cli_including_web_is_a_violation(self):
        with tree({"cli/admin.cpp": '#include "web/server.h"\nnamespace bzs::cli {\n}\n'}) as d:
            self.assertEqual(module_graph.check(d),
                             ['cli/admin.cpp: #include "web/server.h": cli may not depend on web'])

    def test_the_core_may_not_reach_an_adapter(self):
        with tree({"core/auth/verifier.cpp": '#include "store/store.h"\n'}) as d:
            self.assertIn("core/auth may not depend on store", module_graph.check(d)[0])

    def test_a_library_outside_its_adapter_is_a_violation(self):
        with tree({"service/x.cpp": "#include <sqlite3.h>\n#include <openssl/evp.h>\n"}) as d:
            problems = module_graph.check(d)
        self.assertEqual(len(problems), 2)
        self.assertIn("<sqlite3.h>: only store may use it", problems[0])
        self.assertIn("<openssl/evp.h>: only core/crypto may use it", problems[1])

    def test_a_namespace_other_than_the_folder_is_a_violation(self):
        with tree({"core/crypto/x.h": "namespace bzs::crypto {\n}\n",
                   "core/crypto/y.h": "namespace bzs::core::crypto::detail {\n}\n"}) as d:
            self.assertEqual(module_graph.check(d),
                             ["core/crypto/x.h: namespace bzs::crypto in folder core/crypto/ "
                              "(expected bzs::core::crypto)"])

    def test_an_unknown_folder_is_reported(self):
        with tree({"misc/x.cpp": "\n"}) as d:
            self.assertIn("folder misc/ is not a module", module_graph.check(d)[0])


if __name__ == "__main__":
    unittest.main()
