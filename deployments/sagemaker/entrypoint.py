"""Entry point of the CLV image: SageMaker starts training jobs with `train` and Batch Transform
containers with `serve`."""

import sys

if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "train":
        import train

        train.main()
    elif command == "serve":
        import serve

        serve.main()
    else:
        raise SystemExit(f"usage: entrypoint.py train|serve (got {command!r})")
