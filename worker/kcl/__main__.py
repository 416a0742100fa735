"""`python -m worker.kcl`: the record processor process that the KCL daemon starts."""

from worker.kcl.child import main

raise SystemExit(main())
