"""Documents people write: YAML read with positions (``yamlpos``), located problems
and their wording (``problems``), the strict pydantic base of every document model
(``base``), and Markdown playbooks (``playbooks``)."""
