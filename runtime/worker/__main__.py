from satchel.runtime.worker.main import main

main()
