"""Imported last by vexrun's forkserver (:data:`vexrun.vmig.workers.PRELOAD`), never elsewhere: moves every
object the server has imported into the collector's permanent generation (``gc.freeze``), so that a worker's
cyclic collections do not walk them. A walk writes to each object's header, and the page it is on, shared with
the server after ``fork``, is copied into the worker."""

import gc

gc.freeze()
