# The one light sleep every firmware wait uses: machine.lightsleep where the port has it,
# else an idle wait (costs more power but still works). Kept tiny: drivers import it too.
import time

try:
    from machine import lightsleep
except ImportError:
    def lightsleep(ms):
        time.sleep_ms(ms)
