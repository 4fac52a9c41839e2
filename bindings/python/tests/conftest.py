"""Shared fixtures for the Python binding tests."""

import os
import sys

import pytest

# Make `import edgeroute` work without PYTHONPATH too.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

MANIFEST = {
    "schemaVersion": "1.1",
    "routes": {
        "critical": "FROM /messages/* WHERE level = 'critical' INTO $upstream",
        "toFilter": {
            "route": "FROM /messages/modules/sensor/* INTO "
                     "BrokeredEndpoint(\"/modules/filter/inputs/in1\")",
            "priority": 1,
        },
    },
    "storeAndForwardConfiguration": {"timeToLiveSecs": 7200},
}


@pytest.fixture
def manifest():
    return MANIFEST
