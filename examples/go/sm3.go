package main

import (
	"encoding/binary"
	"math/bits"
)

// sm3Sum is SM3 (GB/T 32905) of data. Go's standard library has no SM3; this is the whole
// algorithm, checked against the standard's example at start-up (see main).
func sm3Sum(data []byte) [32]byte {
	v := [8]uint32{0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e}
	msg := append(append([]byte{}, data...), 0x80)
	for len(msg)%64 != 56 {
		msg = append(msg, 0)
	}
	var length [8]byte
	binary.BigEndian.PutUint64(length[:], uint64(len(data))*8)
	msg = append(msg, length[:]...)
	p0 := func(x uint32) uint32 { return x ^ bits.RotateLeft32(x, 9) ^ bits.RotateLeft32(x, 17) }
	p1 := func(x uint32) uint32 { return x ^ bits.RotateLeft32(x, 15) ^ bits.RotateLeft32(x, 23) }
	for block := 0; block < len(msg); block += 64 {
		var w [68]uint32
		var w1 [64]uint32
		for j := 0; j < 16; j++ {
			w[j] = binary.BigEndian.Uint32(msg[block+4*j:])
		}
		for j := 16; j < 68; j++ {
			w[j] = p1(w[j-16]^w[j-9]^bits.RotateLeft32(w[j-3], 15)) ^ bits.RotateLeft32(w[j-13], 7) ^ w[j-6]
		}
		for j := 0; j < 64; j++ {
			w1[j] = w[j] ^ w[j+4]
		}
		a, b, c, d, e, f, g, h := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
		for j := 0; j < 64; j++ {
			t, ff, gg := uint32(0x79cc4519), a^b^c, e^f^g
			if j >= 16 {
				t, ff, gg = 0x7a879d8a, (a&b)|(a&c)|(b&c), (e&f)|(^e&g)
			}
			ss1 := bits.RotateLeft32(bits.RotateLeft32(a, 12)+e+bits.RotateLeft32(t, j%32), 7)
			ss2 := ss1 ^ bits.RotateLeft32(a, 12)
			tt1 := ff + d + ss2 + w1[j]
			tt2 := gg + h + ss1 + w[j]
			d, c, b, a = c, bits.RotateLeft32(b, 9), a, tt1
			h, g, f, e = g, bits.RotateLeft32(f, 19), e, p0(tt2)
		}
		v[0], v[1], v[2], v[3] = v[0]^a, v[1]^b, v[2]^c, v[3]^d
		v[4], v[5], v[6], v[7] = v[4]^e, v[5]^f, v[6]^g, v[7]^h
	}
	var out [32]byte
	for i, x := range v {
		binary.BigEndian.PutUint32(out[4*i:], x)
	}
	return out
}
