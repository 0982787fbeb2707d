"""Looking up a builder's named choice in its registry."""


def choose(registry: dict, name: str, what: str):
    """registry[name], or a ValueError that lists the registry's names."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of {list(registry)}.")
    return registry[name]
