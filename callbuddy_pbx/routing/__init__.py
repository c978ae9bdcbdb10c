"""Call routing over ARI for `routing: callbuddy` numbers: the ring plan (plan.py, pure), the per-call router
(router.py) and the service that wires an AriClient to both (service.py)."""
