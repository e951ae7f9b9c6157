"""The docs page's bundle is the pinned ``@asyncapi/react-component`` release, unchanged."""

from __future__ import annotations

import json

import pytest

from fastapi_streaming.asyncapi.docs import BUNDLE_CSS, BUNDLE_JS, BUNDLE_VERSION, STATIC_DIR
from tests.support.asyncapi_parser import NODE_MODULES, TOOLING, require_tooling

PACKAGE = NODE_MODULES / "@asyncapi" / "react-component"


@pytest.mark.node
def test_the_shipped_bundle_is_the_pinned_release() -> None:
    require_tooling()
    pinned = json.loads((TOOLING / "package.json").read_text())["dependencies"]
    assert pinned["@asyncapi/react-component"] == BUNDLE_VERSION
    assert json.loads((PACKAGE / "package.json").read_text())["version"] == BUNDLE_VERSION
    shipped = {
        BUNDLE_JS: "browser/standalone/index.js",
        BUNDLE_CSS: "styles/default.css",
        "asyncapi-react.js.LICENSE.txt": "browser/standalone/index.js.LICENSE.txt",
        "LICENSE": "LICENSE",
    }
    for ours, theirs in shipped.items():
        assert (STATIC_DIR / ours).read_bytes() == (PACKAGE / theirs).read_bytes(), ours


def test_the_licence_ships_with_the_bundle() -> None:
    assert "Apache License" in (STATIC_DIR / "LICENSE").read_text()
