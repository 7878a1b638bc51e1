"""``python -m dealwatch``: the same as the ``dealwatch`` command."""

from dealwatch.cli import main

if __name__ == "__main__":
    main()
