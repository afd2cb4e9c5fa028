"""One module per way of getting bytes into storage; the manager picks and chains them."""
