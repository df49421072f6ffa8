from .resident.client import main

main()
