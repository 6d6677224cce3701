# Independent implementation of the DVOB format (docs/internals/crypto.md)
import struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes

def rotl(v,c): return ((v<<c)&0xffffffff)|(v>>(32-c))
def qr(s,a,b,c,d):
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],16)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],12)
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],8)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],7)
def hchacha(key, n16):
    s=[0x61707865,0x3320646e,0x79622d32,0x6b206574]+list(struct.unpack('<8I',key))+list(struct.unpack('<4I',n16))
    for _ in range(10):
        qr(s,0,4,8,12);qr(s,1,5,9,13);qr(s,2,6,10,14);qr(s,3,7,11,15)
        qr(s,0,5,10,15);qr(s,1,6,11,12);qr(s,2,7,8,13);qr(s,3,4,9,14)
    return struct.pack('<8I',*(s[0:4]+s[12:16]))
def xchacha_seal(key, nonce24, pt, ad):
    sub=hchacha(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b'\0\0\0\0'+nonce24[16:], pt, ad)

def dvob(alg, key, salt, chunk, ad, pt):
    hdr=b'DVOB'+struct.pack('>HBBI',1,alg,0,chunk)+salt
    ok=HKDF(algorithm=hashes.SHA256(),length=32,salt=salt,info=b'dicomvault object v1').derive(key)
    out=hdr
    chunks=[pt[i:i+chunk] for i in range(0,len(pt)-len(pt)%chunk,chunk)]
    chunks.append(pt[len(chunks)*chunk:])
    for i,c in enumerate(chunks):
        last = i==len(chunks)-1
        n12=struct.pack('>QI',i,1 if last else 0)
        if alg==1: out+=AESGCM(ok).encrypt(n12,c,hdr+ad)
        else: out+=xchacha_seal(ok,n12+b'\0'*12,c,hdr+ad)
    return out

def adput(*fields):
    return b''.join(struct.pack('>I',len(f))+f for f in fields)

key=bytes(range(32)); salt=bytes(range(0x40,0x60))
ad=adput(b'obj-1',b'1.2.3.4')
pt=b'The quick brown fox jumps over the lazy dog'
def carr(b):
    s=''.join('\\x%02x'%x for x in b)
    return '\n'.join('\t"'+s[i:i+64]+'"' for i in range(0,len(s),64))
for alg in (1,2):
    print('alg',alg,len(dvob(alg,key,salt,16,ad,pt)))
    print(carr(dvob(alg,key,salt,16,ad,pt)))
# sanity of hchacha: draft-irtf-cfrg-xchacha test vector 2.2.1
k=bytes.fromhex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f')
n=bytes.fromhex('000000090000004a0000000031415927')
print(hchacha(k,n).hex()=='82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc')
import hmac, hashlib
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
mk=bytes(range(0x80,0xa0))
def hkdf(ikm,salt,info,l=32):
    return HKDF(algorithm=hashes.SHA256(),length=l,salt=salt,info=info).derive(ikm)
kek=hkdf(mk,None,b'dicomvault keywrap v1')
mid=hmac.new(mk,b'dicomvault master key id v1',hashlib.sha256).digest()[:8]
nonce=bytes(range(0xc0,0xd8))
dk=bytes(range(0x10,0x30))
label=b'patient:42'
hdr=b'DVWK'+bytes([1,2,0,0])+mid+nonce
blob=hdr+xchacha_seal(kek,nonce,dk,hdr+label)
print('wrap',len(blob)); print(carr(blob))
salt=bytes(range(0xe0,0xf0))
mkp=Argon2id(salt=salt,length=32,iterations=1,lanes=1,memory_cost=8).derive(b'correct horse battery staple')
rec=b'DVKP'+bytes([1,2,0,0])+struct.pack('>IQ',1,8192)+salt+hmac.new(mkp,b'dicomvault master key id v1',hashlib.sha256).digest()[:8]
print('rec',len(rec)); print(carr(rec)); print('mkp', carr(mkp))
