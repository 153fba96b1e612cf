"""One module per connector, each defining ``KIT`` (a :class:`~conformance.kit.StoreKit`)."""
