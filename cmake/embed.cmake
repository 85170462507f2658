# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake: writes IN's
# bytes as a C array, `const unsigned char NAME[]` (with a NUL after them,
# not counted) and `const size_t NAME_len`, so that a file (the status
# page) is part of the binary, not read at run time.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 24 bytes a line
string(REGEX REPLACE "((0x..,){24})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
     "/* Generated from ${IN} by cmake/embed.cmake: do not edit. */\n"
     "#include <stddef.h>\n"
     "extern const unsigned char ${NAME}[];\nextern const size_t ${NAME}_len;\n"
     "const unsigned char ${NAME}[] = {\n${bytes}0};\n"
     "const size_t ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
