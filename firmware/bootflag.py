# Set by boot.py when Ctrl-C arrives before main.py starts: main.py then stays in
# maintenance instead of running the cycle.
interrupted = False
