// The therapy-laser controller's ESP32 board: ESP32_GENERIC (an ESP32-WROOM module, no PSRAM)
// without Bluetooth; the rest, the GC heap included (56 KiB at boot, grown once), as the port
// sets it (mpconfigport.h): docs/memory.md.

#define MICROPY_HW_BOARD_NAME "Therapy laser controller"
#define MICROPY_HW_MCU_NAME "ESP32"

// No Bluetooth stack: the controller has no radio function (sdkconfig.board: CONFIG_BT_ENABLED=n).
#define MICROPY_PY_BLUETOOTH (0)
