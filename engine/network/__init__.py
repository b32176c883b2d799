"""Container networking: the network service (service.py) and its collaborators, one concern each (see service.py)."""
