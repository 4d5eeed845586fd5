"""What the tests share: constants, fakes, harnesses and helpers, imported as
``tests.helpers.<module>`` (never from a conftest module, which pytest discourages)."""
