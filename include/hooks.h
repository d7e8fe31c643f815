/* Shared by the hook files only. */
#ifndef TS_HOOKS_H
#define TS_HOOKS_H

#define TS_EXPORT __attribute__((visibility("default")))

#endif
