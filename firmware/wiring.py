# The board's wiring of its parts, read from board.json: the LoRa radio on its SPI bus.
# Both the node cycle (app.py) and the receiver (receiver.py) build their radio here, so
# neither imports the other.
import config


def make_radio(board, cfg, warm=False):
    from drivers.sx127x import SX127x
    from machine import SPI, Pin
    b = board
    spi = SPI(config.board_get(b, "lora", "spi_id", 2), baudrate=5000000, polarity=0, phase=0,
              sck=Pin(config.board_get(b, "lora", "sck", 18)),
              mosi=Pin(config.board_get(b, "lora", "mosi", 23)),
              miso=Pin(config.board_get(b, "lora", "miso", 19)))
    r = SX127x(spi, config.board_get(b, "lora", "cs", 18), config.board_get(b, "lora", "reset", 14),
               config.board_get(b, "lora", "dio0", 26))
    rc = cfg["radio"]
    if warm and r.is_configured(rc["freq_hz"], rc["sf"], rc["bw_hz"], rc["cr"], rc["sync_word"], rc["preamble"]):
        return r  # still set up from the last cycle, asleep: no reset, no register writes
    r.reset()
    r.configure(rc["freq_hz"], rc["sf"], rc["bw_hz"], rc["cr"], rc["tx_dbm"], rc["sync_word"],
                rc["preamble"], True, config.board_get(b, "lora", "pa_boost", True))
    r.sleep()  # 0.2 uA instead of 1.6 mA in standby while the sensors are sampled
    return r
