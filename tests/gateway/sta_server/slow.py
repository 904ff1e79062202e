"""Test-only middleware: answer a CreateObservations request only after STA_SLOW_ANSWER_S
seconds (the server has stored the batch by then), so a test can kill the forwarder while
its batch is on the server but not yet acknowledged to it."""
import os
import time


class SlowAnswers:
    def __init__(self, get_response):
        self.get_response = get_response
        self.delay = float(os.environ.get("STA_SLOW_ANSWER_S") or 0)

    def __call__(self, request):
        response = self.get_response(request)
        if self.delay and request.method == "POST" and request.path.endswith("/CreateObservations"):
            time.sleep(self.delay)
        return response
